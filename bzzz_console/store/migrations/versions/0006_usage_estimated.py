"""token usage remembers when the server sent no counts and the tokens were estimated from the text

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 22:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('token_usage', schema=None) as batch_op:
        batch_op.add_column(sa.Column('estimated', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('token_usage', schema=None) as batch_op:
        batch_op.drop_column('estimated')
