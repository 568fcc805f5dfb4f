#!/usr/bin/env node
/** The `oidc-broker` command. Each command module registers itself; this file only assembles them. */
import { Command, CommanderError } from 'commander';
import { registerExchangeCommand, registerGateCommand } from './commands/exchange.js';
import { registerLinkerdCommands } from './commands/linkerd.js';
import { registerSpannerCommands } from './commands/spanner.js';
import { registerDoctorCommand } from './doctor.js';
import { registerPolicyCommands } from './policy.js';
import { registerServeCommands } from './serve.js';
import { describeFailure } from './failures.js';
import { registerCompletionCommand } from './completion.js';
import { registerKeysCommands } from './keys.js';
import { LOG_LEVELS, oneOf } from './options.js';
import { EXIT } from './output.js';
import { cliVersion } from './version.js';

export function buildProgram(): Command {
  const program = new Command('oidc-broker')
    .description('Exchange GitLab CI ID tokens for short-lived, approval-gated credentials')
    .version(cliVersion(), '-V, --version', 'print the version (package.json\'s) and exit')
    .option('--log-level <level>', `the server's log level: ${LOG_LEVELS.join(', ')} (or LOG_LEVEL)`, oneOf(LOG_LEVELS))
    .exitOverride()
    .showHelpAfterError();
  program.hook('preAction', (command) => {
    const level = (command.optsWithGlobals() as { logLevel?: string }).logLevel;
    if (level) process.env.LOG_LEVEL = level;
  });
  registerServeCommands(program);
  registerPolicyCommands(program);
  registerExchangeCommand(program);
  registerGateCommand(program);
  registerLinkerdCommands(program);
  registerDoctorCommand(program);
  registerSpannerCommands(program);
  registerKeysCommands(program);
  registerCompletionCommand(program);
  return program;
}

async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }
    const { message, exitCode } = describeFailure(err);
    console.error(`oidc-broker: ${message}`);
    process.exitCode = exitCode;
  }
}

await main(process.argv);
