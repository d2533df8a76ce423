'use strict';
const assert = require('assert');
const app = require('./server');

process.env.LXDCTL_RELEASE = 'v9';
assert.strictEqual(app.greeting(), 'node-hello release v9\n');
console.log('ok 1 - greeting names the app and its release');
