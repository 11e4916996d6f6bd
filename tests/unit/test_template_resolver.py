"""Unit tests for the template loader and intrinsic resolver the local stack relies on."""

from __future__ import annotations

import pytest

from filegate import template
from filegate.errors import StackError
from filegate.local.provision import bucket_notification

DOC = template.load(
    """
Parameters:
  Name: {Type: String}
  Email: {Type: String, Default: ""}
Conditions:
  HasEmail: !Not [!Equals [!Ref Email, ""]]
Resources:
  Queue: {Type: AWS::SQS::Queue}
  Thing:
    Type: AWS::X::Y
    Properties:
      Plain: !Ref Name
      Arn: !GetAtt Queue.Arn
      Subbed: !Sub "arn:${AWS::Partition}:s3:::${Name}/*"
      SubbedAttr: !Sub "${Queue.Arn}-x"
      SubVars: !Sub ["${A}-${Name}", {A: !Ref Name}]
      Joined: !Join ["-", [a, !Ref Name]]
      Maybe: !If [HasEmail, !Ref Email, !Ref AWS::NoValue]
"""
)


def resolver(email: str = "") -> template.Resolver:
    refs = {"Name": "n", "Email": email, "AWS::Partition": "aws", "Queue": "url"}
    return template.Resolver(DOC, refs, lambda logical, attr: f"{logical}.{attr}")


def test_short_form_tags_resolve() -> None:
    properties = resolver().resolve(DOC["Resources"]["Thing"]["Properties"])
    assert properties == {
        "Plain": "n",
        "Arn": "Queue.Arn",
        "Subbed": "arn:aws:s3:::n/*",
        "SubbedAttr": "Queue.Arn-x",
        "SubVars": "n-n",
        "Joined": "a-n",
    }


def test_conditions_pick_the_branch() -> None:
    properties = resolver("ops@example.com").resolve(DOC["Resources"]["Thing"]["Properties"])
    assert properties["Maybe"] == "ops@example.com"
    assert resolver().condition("HasEmail") is False


def test_an_unknown_ref_is_a_clear_error() -> None:
    with pytest.raises(StackError, match="Nope"):
        resolver().resolve({"Ref": "Nope"})


def test_the_shipped_template_loads_with_its_resources() -> None:
    document = template.load()
    assert "IngestEventSourceMapping" in document["Resources"]
    assert "UploadBucket" in document["Resources"]


def test_cfn_notification_becomes_the_s3_api_shape() -> None:
    api = bucket_notification(
        {
            "QueueConfigurations": [
                {"Event": "s3:ObjectCreated:*", "Queue": "arn:q"},
                {
                    "Event": "s3:ObjectRemoved:*",
                    "Queue": "arn:q",
                    "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": "in/"}]}},
                },
            ]
        }
    )
    assert api["QueueConfigurations"][0] == {
        "Id": "filegate-0",
        "QueueArn": "arn:q",
        "Events": ["s3:ObjectCreated:*"],
    }
    assert api["QueueConfigurations"][1]["Filter"] == {
        "Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}]}
    }
