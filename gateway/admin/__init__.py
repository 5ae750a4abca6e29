"""The authenticated admin API: the registry of regions and portals (the operator's door)."""
