/**
 * The script Node runs for a JavaScript action (CommonJS, Node built-ins only): it moves the
 * variables from the file SOLSTICE_ACTION_ENV names (inputs and state, whose names a shell cannot
 * always export and whose values may be secrets) into the environment, deletes the file, and then
 * runs the action's file as Node's own entry point, so `require.main`, ES modules and
 * `process.argv[1]` are as they are for `node main.js` on GitHub's runner.
 */
export const NODE_BOOTSTRAP = `"use strict";
const fs = require("node:fs");
const file = process.env.SOLSTICE_ACTION_ENV;
const main = process.env.SOLSTICE_ACTION_MAIN;
delete process.env.SOLSTICE_ACTION_ENV;
delete process.env.SOLSTICE_ACTION_MAIN;
const vars = JSON.parse(fs.readFileSync(file, "utf8"));
fs.rmSync(file, { force: true });
Object.assign(process.env, vars);
process.argv[1] = main;
require("node:module").runMain(main);
`;
