"""Peer-to-peer: the wire format shared with the original Go BZZZ nodes, and its validation."""
