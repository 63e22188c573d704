-- Expand: a nullable column with a default is backward compatible with the previous release.
ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'open';
