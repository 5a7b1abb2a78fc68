"""Secrets from HashiCorp Vault (or OpenBao, which speaks its API).

- :mod:`app.vault.refs`: the ``vault:`` and ``vault-db:`` references a setting may hold (pure);
- :mod:`app.vault.leases`: when to renew a lease, when to rotate, how long cached credentials hold (pure);
- :mod:`app.vault.client`: logging in (token, AppRole, Kubernetes) and reading secrets, over hvac;
- :mod:`app.vault.resolve`: the settings with their static references read (at start-up);
- :mod:`app.vault.database`: dynamic PostgreSQL credentials, renewed and rotated in the background.
"""
