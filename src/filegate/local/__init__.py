"""The local stack: the same pipeline on one machine, with no AWS account and no docker.

- ``emulator``: the emulator process, moto's WSGI app composed with filegate's middleware
  (``s3_presign``, ``iam``, ``invoke_forwarding``, DynamoDB's own process), and the ``patches``
  (seams into moto) that correct what AWS documents otherwise (S3 events, atomic writes);
- ``provision`` (with ``filegate.template``): deploy the CloudFormation template into the
  emulator and apply what the emulator ignores;
- ``twin``: the running local stack as the operations see it, and the emulator-only steps
  they are handed (``stackref.LocalTwin``);
- ``runtime`` (with ``bootstrap``): run the deployed Lambda zip in warm worker processes;
- ``esm``: the event source mapping that long-polls SQS and invokes the workers;
- ``cloudwatch``: Lambda-style logs and metrics shipped into the emulator;
- ``invoke`` (with ``invoke_forwarding``): the Lambda Invoke API run on the warm workers;
- ``alarms`` (with ``alarm_rules``) and ``sqs_metrics``: alarms evaluated and their SNS actions
  run, on the AWS/Lambda metrics and the AWS/SQS metrics the emulator publishes;
- ``stack``: start, stop and describe the whole local stack (the state file).
"""
