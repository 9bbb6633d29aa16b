# -*- coding: utf-8 -*-
"""The whole Liberty schema in one step.

Revision ID: liberty
Revises: (none)
"""

from __future__ import annotations

from ..deps import op, sa

revision = "liberty"
down_revision = None
branch_labels = None
depends_on = None

# What the schema shows once this revision is applied (state.py checks it against alembic_version).
schema_marker = ("images", True)

MYSQL_TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8"}


def _boolean():
    # Liberty's booleans carry a CHECK constraint on engines without a native type.
    return sa.Boolean(create_constraint=True, name=None)


def _big_integer():
    # Liberty stores image sizes as INTEGER on SQLite (its only 64-bit integer type).
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _soft_delete_columns():
    return [
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.Column("deleted", _boolean(), nullable=False),
    ]


def _timestamps(updated_nullable=True):
    return [
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=updated_nullable),
    ]


def _create(name, items, indexes=()):
    op.create_table(name, *items, **MYSQL_TABLE_OPTIONS)
    for index_name, columns in indexes:
        op.create_index(index_name, name, columns, unique=False)


def _images_tables():
    _create("images", [
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("size", _big_integer(), nullable=True),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("is_public", _boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.Column("deleted", _boolean(), nullable=False),
        sa.Column("disk_format", sa.String(20), nullable=True),
        sa.Column("container_format", sa.String(20), nullable=True),
        sa.Column("checksum", sa.String(32), nullable=True),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("min_disk", sa.Integer(), nullable=False),
        sa.Column("min_ram", sa.Integer(), nullable=False),
        sa.Column("protected", _boolean(), server_default=sa.false(), nullable=False),
        sa.Column("virtual_size", _big_integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    ], [
        ("checksum_image_idx", ["checksum"]),
        ("ix_images_deleted", ["deleted"]),
        ("ix_images_is_public", ["is_public"]),
        ("owner_image_idx", ["owner"]),
    ])
    _create("image_properties", [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        *_soft_delete_columns(),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"]),
        sa.UniqueConstraint("image_id", "name", name="ix_image_properties_image_id_name"),
    ], [
        ("ix_image_properties_deleted", ["deleted"]),
        ("ix_image_properties_image_id", ["image_id"]),
    ])
    _create("image_locations", [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.String(36), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        *_soft_delete_columns(),
        sa.Column("meta_data", sa.Text(), nullable=True),  # JSON text
        sa.Column("status", sa.String(30), server_default="active", nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"]),
    ], [
        ("ix_image_locations_deleted", ["deleted"]),
        ("ix_image_locations_image_id", ["image_id"]),
    ])
    _create("image_members", [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.String(36), nullable=False),
        sa.Column("member", sa.String(255), nullable=False),
        sa.Column("can_share", _boolean(), nullable=False),
        *_soft_delete_columns(),
        sa.Column("status", sa.String(20), server_default="pending", nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("image_id", "member", "deleted_at",
                            name="image_members_image_id_member_deleted_at_key"),
    ], [
        ("ix_image_members_deleted", ["deleted"]),
        ("ix_image_members_image_id", ["image_id"]),
        ("ix_image_members_image_id_member", ["image_id", "member"]),
    ])
    _create("image_tags", [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.String(36), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        *_soft_delete_columns(),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"]),
        sa.PrimaryKeyConstraint("id"),
    ], [
        ("ix_image_tags_image_id", ["image_id"]),
        ("ix_image_tags_image_id_tag_value", ["image_id", "value"]),
    ])


def _tasks_tables():
    _create("tasks", [
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(30), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        *_soft_delete_columns(),
        sa.PrimaryKeyConstraint("id"),
    ], [
        ("ix_tasks_deleted", ["deleted"]),
        ("ix_tasks_owner", ["owner"]),
        ("ix_tasks_status", ["status"]),
        ("ix_tasks_type", ["type"]),
        ("ix_tasks_updated_at", ["updated_at"]),
    ])
    _create("task_info", [
        sa.Column("task_id", sa.String(36), nullable=False),
        sa.Column("input", sa.Text(), nullable=True),  # JSON text
        sa.Column("result", sa.Text(), nullable=True),  # JSON text
        sa.Column("message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"]),
        sa.PrimaryKeyConstraint("task_id"),
    ])


def _metadef_tables():
    def namespace_fk():
        return sa.ForeignKeyConstraint(["namespace_id"], ["metadef_namespaces.id"])

    _create("metadef_namespaces", [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("namespace", sa.String(80), nullable=False),
        sa.Column("display_name", sa.String(80), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("visibility", sa.String(32), nullable=True),
        sa.Column("protected", _boolean(), nullable=True),
        sa.Column("owner", sa.String(255), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("namespace", name="uq_metadef_namespaces_namespace"),
    ], [("ix_metadef_namespaces_owner", ["owner"])])
    _create("metadef_resource_types", [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("protected", _boolean(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_metadef_resource_types_name"),
    ])
    _create("metadef_namespace_resource_types", [
        sa.Column("resource_type_id", sa.Integer(), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("properties_target", sa.String(80), nullable=True),
        sa.Column("prefix", sa.String(80), nullable=True),
        *_timestamps(),
        namespace_fk(),
        sa.ForeignKeyConstraint(["resource_type_id"], ["metadef_resource_types.id"]),
        sa.PrimaryKeyConstraint("resource_type_id", "namespace_id"),
    ], [("ix_metadef_ns_res_types_namespace_id", ["namespace_id"])])
    _create("metadef_objects", [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("required", sa.Text(), nullable=True),
        sa.Column("json_schema", sa.Text(), nullable=False),
        *_timestamps(),
        namespace_fk(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("namespace_id", "name", name="uq_metadef_objects_namespace_id_name"),
    ], [("ix_metadef_objects_name", ["name"])])
    _create("metadef_properties", [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("json_schema", sa.Text(), nullable=False),
        *_timestamps(),
        namespace_fk(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("namespace_id", "name", name="uq_metadef_properties_namespace_id_name"),
    ], [("ix_metadef_properties_name", ["name"])])
    _create("metadef_tags", [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        *_timestamps(),
        namespace_fk(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("namespace_id", "name", name="uq_metadef_tags_namespace_id_name"),
    ], [("ix_metadef_tags_name", ["name"])])


def _artifact_tables():
    """The Glare tables Liberty created and Pike dropped again."""
    def artifact_fk(column="artifact_id"):
        return sa.ForeignKeyConstraint([column], ["artifacts.id"])

    _create("artifacts", [
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("type_name", sa.String(255), nullable=False),
        sa.Column("type_version_prefix", sa.BigInteger(), nullable=False),
        sa.Column("type_version_suffix", sa.String(255), nullable=True),
        sa.Column("type_version_meta", sa.String(255), nullable=True),
        sa.Column("version_prefix", sa.BigInteger(), nullable=False),
        sa.Column("version_suffix", sa.String(255), nullable=True),
        sa.Column("version_meta", sa.String(255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("visibility", sa.String(32), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        *_timestamps(updated_nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.Column("published_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    ], [
        ("ix_artifact_name_and_version", ["name", "version_prefix", "version_suffix"]),
        ("ix_artifact_owner", ["owner"]),
        ("ix_artifact_state", ["state"]),
        ("ix_artifact_type", ["type_name", "type_version_prefix", "type_version_suffix"]),
        ("ix_artifact_visibility", ["visibility"]),
    ])
    _create("artifact_blobs", [
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("artifact_id", sa.String(36), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("checksum", sa.String(32), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("item_key", sa.String(329), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        *_timestamps(updated_nullable=False),
        artifact_fk(),
        sa.PrimaryKeyConstraint("id"),
    ], [
        ("ix_artifact_blobs_artifact_id", ["artifact_id"]),
        ("ix_artifact_blobs_name", ["name"]),
    ])
    _create("artifact_dependencies", [
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("artifact_source", sa.String(36), nullable=False),
        sa.Column("artifact_dest", sa.String(36), nullable=False),
        sa.Column("artifact_origin", sa.String(36), nullable=False),
        sa.Column("is_direct", _boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(36), nullable=True),
        *_timestamps(updated_nullable=False),
        artifact_fk("artifact_dest"),
        artifact_fk("artifact_origin"),
        artifact_fk("artifact_source"),
        sa.PrimaryKeyConstraint("id"),
    ], [
        ("ix_artifact_dependencies_dest_id", ["artifact_dest"]),
        ("ix_artifact_dependencies_direct_dependencies", ["artifact_source", "is_direct"]),
        ("ix_artifact_dependencies_origin_id", ["artifact_origin"]),
        ("ix_artifact_dependencies_source_id", ["artifact_source"]),
    ])
    _create("artifact_properties", [
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("artifact_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("string_value", sa.String(255), nullable=True),
        sa.Column("int_value", sa.Integer(), nullable=True),
        sa.Column("numeric_value", sa.Numeric(), nullable=True),
        sa.Column("bool_value", _boolean(), nullable=True),
        sa.Column("text_value", sa.Text(), nullable=True),
        *_timestamps(updated_nullable=False),
        sa.Column("position", sa.Integer(), nullable=True),
        artifact_fk(),
        sa.PrimaryKeyConstraint("id"),
    ], [
        ("ix_artifact_properties_artifact_id", ["artifact_id"]),
        ("ix_artifact_properties_name", ["name"]),
    ])
    _create("artifact_tags", [
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("artifact_id", sa.String(36), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        *_timestamps(updated_nullable=False),
        artifact_fk(),
        sa.PrimaryKeyConstraint("id"),
    ], [
        ("ix_artifact_tags_artifact_id", ["artifact_id"]),
        ("ix_artifact_tags_artifact_id_tag_value", ["artifact_id", "value"]),
    ])
    _create("artifact_blob_locations", [
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("blob_id", sa.String(36), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        *_timestamps(updated_nullable=False),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(36), nullable=True),
        sa.ForeignKeyConstraint(["blob_id"], ["artifact_blobs.id"]),
        sa.PrimaryKeyConstraint("id"),
    ], [("ix_artifact_blob_locations_blob_id", ["blob_id"])])


def upgrade():
    _images_tables()
    _tasks_tables()
    _metadef_tables()
    _artifact_tables()
