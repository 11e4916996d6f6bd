"""Operations on a deployed stack, local or on AWS: one module per runbook concern.

deploy/releases (change sets, versions, the ``live`` alias), verify, evidence, logs, dlq,
reconcile, intake (pause/resume) and alarms. Each module takes a ``StackRef`` (from
``filegate.stackref``) and works the same against the local stack and AWS; the CLI in
``filegate.cli`` only parses options, calls one function here and renders the result.
"""
