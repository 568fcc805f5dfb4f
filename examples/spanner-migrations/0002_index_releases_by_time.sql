CREATE INDEX releases_by_time ON releases (created_at DESC);
