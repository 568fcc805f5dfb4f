-- The example migrations the project's own pipeline plans (dry run) with the spanner-migrate component.
CREATE TABLE releases (
  release_id STRING(64) NOT NULL,
  created_at TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
) PRIMARY KEY (release_id);
