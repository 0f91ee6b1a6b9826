using System.CommandLine;
using KernelModel.Cli;

var root = new RootCommand("kmodel: a managed model of the Linux VFIO subsystem");
foreach (var command in CliCommands.All())
{
    root.Subcommands.Add(command);
}

return root.Parse(args).Invoke();
