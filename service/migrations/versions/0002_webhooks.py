"""Webhooks: inbound jobs, subscribers, callback outbox and delivery log.

Revision ID: 0002_webhooks
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_webhooks"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(60), nullable=False),
        sa.Column("article", sa.JSON, nullable=False),
        sa.Column("status", sa.String(12), nullable=False, index=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("report_id", sa.String(40), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("source", "event_id", name="uq_webhook_jobs_event"),
    )
    op.create_table(
        "webhook_subscribers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("event_key", sa.String(80), nullable=False),
        sa.Column("subscriber_id", sa.String(40), sa.ForeignKey("webhook_subscribers.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("event_type", sa.String(60), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(12), nullable=False, index=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("event_key", "subscriber_id", name="uq_webhook_outbox_event"),
    )
    op.create_table(
        "webhook_delivery_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("outbox_id", sa.String(40), sa.ForeignKey("webhook_outbox.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.String(300), nullable=True),
        sa.Column("duration_s", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_delivery_log")
    op.drop_table("webhook_outbox")
    op.drop_table("webhook_subscribers")
    op.drop_table("webhook_jobs")
