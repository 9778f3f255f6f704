using System.CommandLine;
using Apex.Cli;

var options = new GlobalOptions();
var root = new RootCommand("apex: the command line of an Apex server (sign in, ask the agent team, follow and cancel runs, upload workload data).")
{
    options.Server,
    options.Json,
    AccountCommands.Login(options),
    AccountCommands.Logout(options),
    RunCommands.Ask(options),
    RunCommands.Chat(options),
    RunCommands.Resume(options),
    ApprovalCommands.Approve(options),
    ApprovalCommands.Reject(options),
    ListCommands.Threads(options),
    ListCommands.Runs(options),
    ListCommands.Usage(options),
    WorkloadCommands.Upload(options),
    WorkloadCommands.Sample(options),
    KeyCommands.Keys(options),
};
// Ctrl+C is the commands' own (RunCommands cancels the run on the server): no termination handler of the library's.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
