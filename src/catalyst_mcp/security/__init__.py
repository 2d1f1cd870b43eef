"""Who may do what: identities, API keys, tokens, RBAC, the secrets vault, rate limits."""
