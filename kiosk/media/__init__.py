"""Media code shared by the server's bridge and the tablet agent: encoded forwarding."""
