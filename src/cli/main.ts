#!/usr/bin/env node
/** The `oidc-broker` command. Each command module registers itself; this file only assembles them. */
import { Command, CommanderError } from 'commander';
import { registerExchangeCommand, registerGateCommand } from './commands/exchange.js';
import { registerLinkerdCommands } from './commands/linkerd.js';
import { registerSpannerCommands } from './commands/spanner.js';
import { registerDoctorCommand } from './doctor.js';
import { registerPolicyCommands } from './policy.js';
import { registerServeCommands } from './serve.js';
import { ConfigError } from '../config/load.js';
import { EXIT } from './output.js';

export function buildProgram(): Command {
  const program = new Command('oidc-broker')
    .description('Exchange GitLab CI ID tokens for short-lived, approval-gated credentials')
    .version('0.1.0')
    .exitOverride()
    .showHelpAfterError();
  registerServeCommands(program);
  registerPolicyCommands(program);
  registerExchangeCommand(program);
  registerGateCommand(program);
  registerLinkerdCommands(program);
  registerDoctorCommand(program);
  registerSpannerCommands(program);
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
    console.error(`oidc-broker: ${(err as Error).message}`);
    process.exitCode = err instanceof ConfigError ? EXIT.config : EXIT.denied;
  }
}

await main(process.argv);
