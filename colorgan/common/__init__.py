"""Foundation: seeding and devices, data-parallel ranks, the config machinery, the papers' values, formatting helpers. Imports nothing else of colorgan."""
