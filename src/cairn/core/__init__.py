"""The engine: objects, tenants and policies. No HTTP and no SQL in here."""
