using System.CommandLine;

namespace KernelModel.Cli;

/// <summary>The kmodel subcommands; each lives in its own file under Commands/.</summary>
internal static class CliCommands
{
    public static IEnumerable<Command> All()
    {
        yield return MachineCommand.Create();
        yield return UapiCommand.Create();
        yield return PluginsCommand.Create();
        yield return RunCommand.Create();
    }
}
