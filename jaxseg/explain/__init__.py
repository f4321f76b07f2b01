"""What transferred: activation capture, maps, maximisation and representation similarity."""
