"""What happened: the audit trail (and later metrics and tracing)."""
