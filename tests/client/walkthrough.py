"""The README's curl walk-through, through a client generated from /api/openapi.json.

Run by .ci/client-walkthrough against a fresh `adbudget standalone`: a change that breaks
generated clients (a renamed model, a schema that no longer matches the answers) fails CI.

Usage: python walkthrough.py BASE_URL TOKEN   (the generated package `adbudget_client` on the path)
"""

import sys

from adbudget_client import AuthenticatedClient
from adbudget_client.api.brands import create_brand, get_brand, update_brand
from adbudget_client.api.campaigns import campaign_history, create_campaign, put_dayparting
from adbudget_client.api.spend import record_spend
from adbudget_client.models import (
    Brand,
    Campaign,
    CampaignPage,
    CreateBrand,
    CreateCampaign,
    Day,
    PauseReason,
    SpendEvent,
    SpendLog,
    SpendResult,
    StatusChange,
    StatusChangePage,
    UpdateBrand,
    Window,
)


def expect(response, status, what):
    if response.status_code != status:
        sys.exit(f"{what}: expected {status}, got {response.status_code}: {response.content!r}")
    return response.parsed


def main(base, token):
    # The models are named after the server's: a page of campaigns is a CampaignPage of Campaign.
    assert CampaignPage.__name__ == "CampaignPage" and Campaign.__name__ == "Campaign"
    client = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)

    # A brand with a daily budget of 100.00 in Berlin time, and a campaign.
    brand = expect(
        create_brand.sync_detailed(
            client=client,
            body=CreateBrand(
                name="Acme", daily_budget="100.00", monthly_budget="2000.00", timezone="Europe/Berlin"
            ),
        ),
        201,
        "create the brand",
    )
    assert isinstance(brand, Brand) and brand.timezone == "Europe/Berlin", brand
    campaign = expect(
        create_campaign.sync_detailed(
            client=client, body=CreateCampaign(brand_id=brand.id, name="Winter sale")
        ),
        201,
        "create the campaign",
    )
    assert isinstance(campaign, Campaign) and campaign.is_active, campaign

    # Spend 60.00: still active.
    first = expect(
        record_spend.sync_detailed(
            client=client, body=SpendEvent(campaign_id=campaign.id, amount="60.00", event_id="evt-1")
        ),
        201,
        "spend 60",
    )
    assert isinstance(first, SpendResult) and isinstance(first.spend, SpendLog), first
    assert first.campaign.is_active, first

    # Spend 40.00 more: the budget is reached, and the response already shows the pause.
    event = SpendEvent(campaign_id=campaign.id, amount="40.00", event_id="evt-2")
    second = expect(record_spend.sync_detailed(client=client, body=event), 201, "spend 40")
    assert not second.campaign.is_active, second
    assert second.campaign.pause_reasons == [PauseReason.BRAND_DAILY_BUDGET], second

    # Sending evt-2 again counts nothing (200 with the original result).
    again = expect(record_spend.sync_detailed(client=client, body=event), 200, "evt-2 again")
    assert again.spend.id == second.spend.id, again
    brand = expect(get_brand.sync_detailed(brand.id, client=client), 200, "read the brand")
    assert brand.daily_spend == "100.00", brand

    # Why and when it changed, newest first.
    history = expect(
        campaign_history.sync_detailed(campaign.id, client=client), 200, "read the history"
    )
    assert isinstance(history, StatusChangePage) and isinstance(history.items[0], StatusChange)
    assert history.items[0].is_active is False, history

    # Raise the budget: the campaign comes back at once.
    expect(
        update_brand.sync_detailed(brand.id, client=client, body=UpdateBrand(daily_budget="150.00")),
        200,
        "raise the budget",
    )
    history = campaign_history.sync(campaign.id, client=client)
    assert history.items[0].is_active is True, history

    # Keep it to office hours, Monday to Friday, Berlin time.
    office = Window(
        days=[Day.MON, Day.TUE, Day.WED, Day.THU, Day.FRI], start="09:00", end="17:00"
    )
    scheduled = expect(
        put_dayparting.sync_detailed(campaign.id, client=client, body=[office]),
        200,
        "set the dayparting",
    )
    assert scheduled.dayparting and scheduled.dayparting[0].start == "09:00", scheduled
    print("the walk-through ran through the generated client")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
