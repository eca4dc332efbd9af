"""The festival mini-app's own tests, as a third-party developer would write them."""

from plugins.testing import check_miniapp


def test_passes_the_contract_kit(tmp_path, superapp_database_url) -> None:
    # superapp_database_url (the kit's pytest plugin): once on SQLite, once on PostgreSQL when configured.
    check_miniapp("festival", tmp_path, superapp_database_url)


def test_the_programme_is_served_on_both_databases(superapp_client) -> None:
    with superapp_client("festival") as client:
        response = client.get("/api/miniapps/festival/events")
        assert response.status_code == 200 and isinstance(response.json(), list)
