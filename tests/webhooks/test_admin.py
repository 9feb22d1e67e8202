"""The admin lists webhooks without their secret and shows deliveries read-only, escaped."""

from registry.models import WebhookDelivery
from registry.webhooks.delivery import delivery_attempt
from registry.webhooks.services import webhook_emit
from tests.webhooks.conftest import SECRET


def test_the_admin_never_shows_a_secret_and_escapes_what_a_receiver_answered(admin_client, webhook, receiver):
    receiver.answer_body = b"<script>alert(1)</script>"
    (delivery,) = webhook_emit("alias.moved", {"alias": "production"})
    delivery_attempt(delivery.id)

    for url in ("/admin/registry/webhook/", f"/admin/registry/webhook/{webhook.id}/change/"):
        page = admin_client.get(url)
        assert page.status_code == 200 and SECRET not in page.content.decode()
        assert SECRET[-4:] in page.content.decode()
    page = admin_client.get(f"/admin/registry/webhookdelivery/{delivery.id}/change/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert (
        admin_client.post(f"/admin/registry/webhookdelivery/{delivery.id}/delete/", {"post": "yes"}).status_code == 403
    )
    assert WebhookDelivery.objects.filter(pk=delivery.pk).exists()
