"""The segment builder in the browser: Marketing builds "orders ≥ 2" from the
drop-downs, watches the live count change, saves, and lands on the segment page
with its members selected."""

import re
import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from segments.metrics import metrics_recompute
from segments.models import Segment
from segments.tasks import segment_rebuild_task
from tests.factories.customers import CustomerFactory
from tests.factories.orders import OrderFactory
from tests.staff import press_sign_in

pytestmark = pytest.mark.e2e

SHOTS = str(Path(tempfile.gettempdir()) / "e2e-segments-{}.png")


@pytest.fixture
def shop(store):
    """Two repeat buyers, three one-order buyers."""
    now = timezone.now()
    for index, orders in enumerate((3, 2, 1, 1, 1)):
        customer = CustomerFactory(
            first_name=f"Klient{index}", email=f"klient{index}@example.pl"
        )
        for number in range(orders):
            OrderFactory(
                store=store,
                customer=customer,
                placed_at=now - timedelta(days=3 + 11 * number + index),
                total=Decimal("120.00"),
            )
    metrics_recompute()


@pytest.fixture
def rebuild_inline(monkeypatch):
    """The rebuild the page queues runs at once (no worker here)."""
    monkeypatch.setattr(
        segment_rebuild_task,
        "delay",
        lambda *args, **kwargs: segment_rebuild_task(*args, **kwargs),
    )


def test_marketing_builds_a_segment_with_a_live_count(
    live_server, page, make_staff, shop, rebuild_inline
):
    make_staff("Marketing", username="magda")
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.goto(live_server.url + "/login/?next=/segments/")
    page.get_by_label("Nazwa użytkownika").fill("magda")
    page.get_by_label("Hasło").fill("test-pass-123")
    press_sign_in(page, "magda")
    page.wait_for_url(re.compile(r"/segments/$"))
    page.get_by_role("button", name="EN").click()
    page.wait_for_load_state()

    page.get_by_role("link", name="New segment").click()
    page.wait_for_url(re.compile(r"/segments/new/$"))
    page.get_by_label("Name", exact=True).fill("Repeat buyers")
    page.get_by_label("Dynamic (by rules)").check()

    # A condition without a field counts everyone who may be profiled.
    builder = page.locator("[data-rule-builder]")
    builder.get_by_role("button", name="Add condition").click()
    preview = page.locator("#segment-preview")
    preview.locator("[data-preview-count='5']").wait_for()

    builder.locator("select[data-field]").select_option(label="Orders")
    operator = builder.locator("select[data-operator]")
    # Only the operators of a number field are offered.
    offered = operator.locator("option").all_inner_texts()
    assert "at least" in offered
    assert "contains" not in offered
    operator.select_option(label="at least")
    builder.locator("input[data-value]").fill("2")
    preview.locator("[data-preview-count='2']").wait_for()
    assert "2 customers" in preview.inner_text()
    page.screenshot(path=SHOTS.format("builder"), full_page=True)

    page.get_by_role("button", name="Create segment").click()
    segment = None
    page.wait_for_url(re.compile(r"/segments/\d+/$"))
    segment = Segment.objects.get(name="Repeat buyers")
    assert page.url.endswith(f"/segments/{segment.pk}/")
    assert segment.rules == {
        "op": "and",
        "rules": [{"field": "orders_count", "operator": "gte", "value": 2}],
    }
    assert "Repeat buyers" in page.get_by_role("heading", level=1).inner_text()
    assert "orders ≥ 2" in page.locator("[data-definition]").inner_text()
    assert page.locator("[data-segment-size]").inner_text() == "2"
    members = page.locator("#members tbody tr")
    assert members.count() == 2
    page.screenshot(path=SHOTS.format("segment"), full_page=True)
    assert errors == []
