"""1C:Enterprise over the standard OData interface: the system ``1c`` of the routing table."""
