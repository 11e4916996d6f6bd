"""The verdict-events publisher Lambda: the ledger's change stream in, EventBridge events out.

``mapping`` decides what one DynamoDB stream record of the ledger means to a consumer (at most
one event, or nothing), ``bus`` puts events on the stack's EventBridge bus, ``handler`` is the
thin entry point, ``exceptions`` the errors of its own. docs/events.md is the contract.

Nothing here imports from ``filegate.cli``, ``filegate.local`` or ``filegate.ops``: the Lambda
package ships this package beside the ingestion's.
"""
