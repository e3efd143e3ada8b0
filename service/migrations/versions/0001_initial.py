"""Initial tables: api_keys, checks, headshots.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False, default=False),
    )
    op.create_table(
        "checks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("api_key_id", sa.String(32), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("byline", sa.String(300), nullable=True),
        sa.Column("byline_key", sa.String(300), nullable=True, index=True),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("text_probability", sa.Float, nullable=True),
        sa.Column("energy_j", sa.Float, nullable=True),
        sa.Column("detector_versions", sa.JSON, nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.UniqueConstraint("api_key_id", "idempotency_key", name="uq_checks_idempotency"),
    )
    op.create_table(
        "headshots",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("check_id", sa.String(40), sa.ForeignKey("checks.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("byline_key", sa.String(300), nullable=True, index=True),
        sa.Column("sha256", sa.String(64), nullable=False, index=True),
        sa.Column("phash", sa.String(32), nullable=True),
        sa.Column("embedding", sa.LargeBinary, nullable=True),
        sa.Column("image", sa.LargeBinary, nullable=True),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("headshots")
    op.drop_table("checks")
    op.drop_table("api_keys")
