'use strict';
// For jest's `snapshotSerializers: ['cdk-rollback/testing/jest-serializer']`.
module.exports = require('../dist/lib/testing').snapshotSerializer;
