namespace Apex.Server.Tools;

/// <summary>Tools that come and go at run time (an MCP server's), next to the ones registered at start-up.</summary>
internal interface IToolSource
{
    IApexTool? Find(string name);

    /// <summary>The names of this source's tools that the agent is offered.</summary>
    IEnumerable<string> NamesFor(string agent);
}
