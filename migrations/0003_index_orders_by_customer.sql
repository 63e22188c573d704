-- cdk-rollback:no-transaction
-- CREATE INDEX CONCURRENTLY does not block writes but cannot run inside a transaction block.
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_idx ON orders (customer);
