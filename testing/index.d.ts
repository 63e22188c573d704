export * from '../dist/lib/testing';
