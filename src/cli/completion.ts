/** `oidc-broker completion bash|zsh`: a completion script generated from the commands and options themselves. */
import { Argument, type Command } from 'commander';

interface Node {
  readonly path: string;
  readonly words: string[];
}

/** Every command path ('' for the top level) with the words that may follow it: subcommands and long options. */
function commandTree(program: Command): Node[] {
  const nodes: Node[] = [];
  const walk = (command: Command, path: string): void => {
    const subcommands = command.commands.filter((sub) => !(sub as Command & { _hidden?: boolean })._hidden);
    const options = command.options.filter((option) => !option.hidden && option.long).map((option) => option.long as string);
    nodes.push({ path, words: [...subcommands.map((sub) => sub.name()), ...options, '--help'] });
    for (const sub of subcommands) walk(sub, path ? `${path} ${sub.name()}` : sub.name());
  };
  walk(program, '');
  return nodes;
}

function bashScript(name: string, nodes: Node[]): string {
  const cases = nodes.map((node) => `    "${node.path}") words="${node.words.join(' ')}" ;;`).join('\n');
  return `# bash completion for ${name}: source it, or save it as /etc/bash_completion.d/${name}
_${name.replace(/-/g, '_')}() {
  local cur path="" word i=1
  cur="\${COMP_WORDS[COMP_CWORD]}"
  while [ "$i" -lt "$COMP_CWORD" ]; do
    word="\${COMP_WORDS[i]}"
    case "$word" in -*) ;; *) case " $(_${name.replace(/-/g, '_')}_words "$path") " in *" $word "*) path="\${path:+$path }$word" ;; esac ;; esac
    i=$((i + 1))
  done
  COMPREPLY=($(compgen -W "$(_${name.replace(/-/g, '_')}_words "$path")" -- "$cur"))
  [ \${#COMPREPLY[@]} -eq 0 ] && COMPREPLY=($(compgen -f -- "$cur"))
}
_${name.replace(/-/g, '_')}_words() {
  local words=""
  case "$1" in
${cases}
  esac
  printf '%s' "$words"
}
complete -F _${name.replace(/-/g, '_')} ${name}
`;
}

function zshScript(name: string, nodes: Node[]): string {
  return `#compdef ${name}
# zsh completion for ${name}: save as _${name} in a directory on $fpath, or: source <(${name} completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bashScript(name, nodes)}`;
}

export function registerCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script (bash or zsh)')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
    .action((shell: 'bash' | 'zsh') => {
      const nodes = commandTree(program);
      process.stdout.write(shell === 'bash' ? bashScript(program.name(), nodes) : zshScript(program.name(), nodes));
    });
}
