// Public API of cdk-rollback. This file only re-exports.
export * from './safe-lambda-api';
export * from './pre-migration-snapshot';
export * from './database-migrations';
export * from './versioned-site';
