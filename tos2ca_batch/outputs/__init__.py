"""Writers of the published products (netCDF-4, JSON, GeoJSON, PNG, CSV)."""
