"""Mass-event operations: a time-boxed workspace (partners, collections, tokens, protected assets,
lookalike watch, alerts, incidents, shift reports, declassification) built only from the node's
existing services, so that nothing an operation does bypasses the policy (docs/operations-runbook.md)."""
