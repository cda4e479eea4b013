"""Block and metadata caches (memory over persistent disk); decides no semantics."""
