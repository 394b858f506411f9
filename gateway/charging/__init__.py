"""Smart charging on the central system side: the operator's charging profiles."""
