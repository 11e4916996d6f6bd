"""The ingestion Lambda: ``records`` holds the per-event logic, ``handler`` the thin entry point,
``exceptions`` the errors of its own.

Nothing here imports from ``filegate.cli``, ``filegate.local`` or ``filegate.ops``: the Lambda
package ships only settings, errors, events, ledger, storage and this package.
"""
