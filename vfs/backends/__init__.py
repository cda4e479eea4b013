"""Portal API clients, one per protocol, behind one ``Backend`` protocol."""
