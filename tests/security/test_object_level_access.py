"""OWASP API1 (broken object level authorization): an id is honoured only under the deal it belongs to.

The caller below owns both deals, so every refusal comes from the object's own scoping, not from the
deal guard: a comment, node, condition or chat document of deal A is unknown under deal B's URLs.
"""

from __future__ import annotations

import uuid

from canvas.models import ApprovalCondition, Comment, SectionApproval
from canvas.nodes import selectors as node_selectors
from canvas.nodes import services as nodes
from tests import factories
from tests.canvas.conftest import canvas_url


def _objects_of(deal, user) -> dict[str, str]:
    comment = Comment.objects.create(deal=deal, section_key="executive_summary", author=user, body="Check NOI.")
    approval = SectionApproval.objects.create(deal=deal, section_key="executive_summary", approved_by=user)
    condition = ApprovalCondition.objects.create(
        approval=approval, deal=deal, section_key="executive_summary", text="Confirm the rent roll."
    )
    node = nodes.node_create(deal=deal, actor_id=str(user.pk), type="strategy_item", title="Hold five years")
    return {"comment": str(comment.pk), "condition": str(condition.pk), "node": node["id"]}


def test_ids_of_another_deals_objects_are_404_even_for_an_owner_of_both(cast):
    owner = cast.users["owner"]
    mine = cast.deal
    theirs = factories.make_deal(cast.org, owner=owner, name="Harbor Point")
    foreign = _objects_of(theirs, owner)
    own_node = nodes.node_create(deal=mine, actor_id=str(owner.pk), type="strategy_item", title="Refinance")
    client = cast.client("owner")

    attempts = [
        client.post(canvas_url(mine, f"comments/{foreign['comment']}/resolve")),
        client.post(canvas_url(mine, "comments"), {"parent_id": foreign["comment"], "body": "A reply."}, format="json"),
        client.post(canvas_url(mine, f"sections/executive_summary/conditions/{foreign['condition']}/resolve")),
        client.patch(canvas_url(mine, f"nodes/{foreign['node']}"), {"status": "approve"}, format="json"),
        client.delete(canvas_url(mine, f"nodes/{foreign['node']}")),
        client.post(
            canvas_url(mine, f"nodes/{foreign['node']}/links"),
            {"to": own_node["id"], "type": "supports"},
            format="json",
        ),
    ]
    assert [response.status_code for response in attempts] == [404] * len(attempts), [
        response.content for response in attempts
    ]
    # nothing of deal B moved
    assert not Comment.objects.get(pk=foreign["comment"]).resolved
    assert Comment.objects.filter(deal=mine).count() == 0
    assert not ApprovalCondition.objects.get(pk=foreign["condition"]).resolved
    assert nodes.node_exists(theirs, foreign["node"])
    assert node_selectors.edges_of(theirs, []) == []


def test_a_deal_the_caller_cannot_see_answers_exactly_like_one_that_does_not_exist(cast):
    """No enumeration oracle: another org's deal and a random id get the same status and the same body."""
    other_orgs_deal = factories.make_deal(cast.other_org, owner=cast.users["other_org"], name="Not yours")
    client = cast.client("owner")
    for suffix in ("", "/versions", "/export", "/comments"):
        hidden = client.get(f"/api/canvas/{other_orgs_deal.pk}{suffix}")
        unknown = client.get(f"/api/canvas/{uuid.uuid4()}{suffix}")
        assert hidden.status_code == unknown.status_code == 404, suffix
        assert hidden.json() == unknown.json() == {"detail": "Deal not found."}, suffix
    hidden = client.get(f"/api/deals/{other_orgs_deal.pk}")
    unknown = client.get(f"/api/deals/{uuid.uuid4()}")
    assert (hidden.status_code, hidden.json()) == (unknown.status_code, unknown.json())
