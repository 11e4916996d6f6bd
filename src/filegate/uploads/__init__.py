"""Partner uploads: the partner registry, request validation, the upload rules and the API.

``api`` is the Lambda entry point; it imports only this package, settings, errors, events,
ledger, storage, Powertools and (lazily) boto3, as the Lambda package ships nothing else.
The upload client (``client``, for `filegate upload`) talks HTTP only: the package root
imports nothing, so that importing the client does not bring the API's modules (partners,
service, storage) and botocore with it.
"""
