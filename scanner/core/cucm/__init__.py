"""CUCM's read-only APIs, sans-IO: SOAP envelopes (``soap``), AXL's phone and node lists (``axl``),
RisPort70's registration data (``risport``) and the inventory they make together (``discovery``).
Submodules are imported explicitly; this package imports nothing itself."""
