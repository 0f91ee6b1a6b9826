using System.CommandLine;
using KernelModel.Scenarios;

namespace KernelModel.Cli;

internal static class RunCommand
{
    public static Command Create()
    {
        var name = new Argument<string?>("name") { Description = "One scenario to run (default: all).", Arity = ArgumentArity.ZeroOrOne };
        var list = new Option<bool>("--list") { Description = "List the scenarios and exit." };
        var command = new Command("run", "Run the built-in scenarios on fresh machines and print a trace of each step.");
        command.Arguments.Add(name);
        command.Options.Add(list);
        command.SetAction(parse =>
        {
            if (parse.GetValue(list))
            {
                foreach (var s in BuiltInScenarios.All)
                {
                    Console.WriteLine($"{s.Name,-20} {s.Description}");
                }

                return 0;
            }

            IEnumerable<Scenario> scenarios = BuiltInScenarios.All;
            if (parse.GetValue(name) is { } one)
            {
                if (!BuiltInScenarios.TryGet(one, out var scenario))
                {
                    Console.Error.WriteLine($"kmodel: no scenario '{one}' (kmodel run --list)");
                    return 2;
                }

                scenarios = [scenario];
            }

            var failed = 0;
            foreach (var scenario in scenarios)
            {
                Console.WriteLine($"== {scenario.Name}: {scenario.Description}");
                var trace = scenario.Run();
                Console.Write(trace.Render());
                Console.WriteLine(trace.Passed ? "PASS" : "FAIL");
                Console.WriteLine();
                failed += trace.Passed ? 0 : 1;
            }

            return failed == 0 ? 0 : 1;
        });
        return command;
    }
}
