"""The lab: two simulated CUCM clusters and a fleet of phones on loopback, with a fault catalog and
an answer key (``trustscan lab build`` / ``trustscan lab serve``; docs/lab.md)."""
