"""two-person rule: approvals waiting for a second operator

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 17:45:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'escalation_approvals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('escalation_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('operator', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('shown_as', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('decision', sa.JSON(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('escalation_id', 'operator', name='uq_approval_operator'),
    )
    with op.batch_alter_table('escalation_approvals', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_escalation_approvals_escalation_id'), ['escalation_id'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('escalation_approvals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_escalation_approvals_escalation_id'))
    op.drop_table('escalation_approvals')
