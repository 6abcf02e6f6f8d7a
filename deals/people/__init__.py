"""People: the caller's own account (`/api/me`, password change) and invitations to orgs."""
