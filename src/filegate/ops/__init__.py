"""Operations on a deployed stack, local or on AWS: one module per runbook concern.

deploy/releases (change sets, versions, the ``live`` alias), verify, evidence, logs, dlq,
reconcile, intake (pause/resume) and alarms. Each module takes a ``StackRef`` (from
``filegate.stackref``) and works the same against the local stack and AWS; the CLI in
``filegate.cli`` only parses options, calls one function here and renders the result.
Nothing here imports ``filegate.local``: what only a stack in the emulator needs reaches these
modules as the ``StackRef``'s ``LocalTwin``, which the CLI builds. AWS calls go through their
owners (``storage``, ``queues``, ``ledger``); output names come from ``filegate.outputs``.
"""
