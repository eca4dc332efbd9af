"""Alembic environment: the engine and target metadata come from ``core.migrate``, never from a file."""

from alembic import context

config = context.config
engine = config.attributes["engine"]
metadata = config.attributes["target_metadata"]


def include_object(obj, name, type_, reflected, compare_to):  # noqa: ANN001 - Alembic's signature
    """Only compare tables that core or a loaded mini-app owns."""
    return type_ != "table" or name in metadata.tables


with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=include_object,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
