'use strict';
// `require('cdk-rollback/testing')`: helpers for your own tests of your stacks (lib/testing.ts).
module.exports = require('../dist/lib/testing');
