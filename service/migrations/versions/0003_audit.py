"""Archive audits: audits and audit_items (the resumable checkpoint).

Revision ID: 0003_audit
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_audit"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audits",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("input_name", sa.String(500), nullable=False),
        sa.Column("input_sha256", sa.String(64), nullable=False, index=True),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("total", sa.Integer, nullable=True),
        sa.Column("done", sa.Integer, nullable=False, default=0),
        sa.Column("out_dir", sa.String(1000), nullable=True),
        sa.Column("api_key_id", sa.String(32), nullable=True),
        sa.Column("summary", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_table(
        "audit_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("audit_id", sa.String(40), sa.ForeignKey("audits.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("item_key", sa.String(300), nullable=False),
        sa.Column("article_id", sa.String(300), nullable=False),
        sa.Column("byline", sa.String(300), nullable=True),
        sa.Column("published", sa.String(40), nullable=True),
        sa.Column("check_id", sa.String(40), nullable=True),
        sa.Column("report", sa.JSON, nullable=True),
        sa.Column("error_code", sa.String(60), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("audit_id", "item_key", name="uq_audit_items_key"),
    )


def downgrade() -> None:
    op.drop_table("audit_items")
    op.drop_table("audits")
