"""Model administration (domain): what the model server has loaded, and the registry rows."""
