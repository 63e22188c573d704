#!/usr/bin/env node
// The example app that `npx cdk synth` synthesizes (cdk.json).
import { buildExampleApp } from './example-app';

buildExampleApp().synth();
