"""What the mount benchmarks share: one concept a module.

* :mod:`.results`: :class:`~.results.Run` (one measured run), rows, workloads
  and the "x times as fast as the peer" comparisons between their best runs;
* :mod:`.meter`: taking a run — wall time, CPU seconds of the portal, the
  mount daemon and the client, what the portal was asked and read or wrote —
  and waiting until the processes are idle around it;
* :mod:`.mounts`: portalfs and ``rclone mount`` (WebDAV backend on the same
  portal) as interchangeable context managers;
* :mod:`.curl`: curl as the network peer, downloading and uploading;
* :mod:`.portal_state`: what the portal holds, seen over the wire, to time
  writes until the portal has them;
* :mod:`.report`: tables, the JSON record, the bar chart and the machine
  description;
* :mod:`.session`: signals, required tools, the work directory that is
  always cleaned up (never through a live mount), the random input file, the
  options every mount benchmark takes, and :class:`~.session.MountBench`,
  the fresh caches, turn-about mount order and interleaved rounds of its
  phases.
"""
