using System.Text.Json;
using Apex.Server.Agents;
using Apex.Server.Tools;

namespace Apex.Tests.Tools;

/// <summary>The filter arguments as the dispatcher checks them, and the triage schema's entities.</summary>
public sealed class FilterSchemaTests
{
    private static JsonElement Json(string json) => JsonDocument.Parse(json).RootElement.Clone();

    public static TheoryData<string, string?> Arguments => new()
    {
        { """{"model":"gpt-4o","feature":"chat","team":"support","from":"2026-11-01","to":"2026-11-08T00:00:00Z"}""", null },
        { """{"from":"2026-11-01T09:30:00+02:00"}""", null },
        { """{"from":"last week"}""", "'from' must be an ISO 8601 date or date-time" },
        { """{"to":"2026-13-01"}""", "'to' must be an ISO 8601 date or date-time" },
        { """{"model":4}""", "'model' must be of type string" },
        { """{"region":"eu"}""", "'region' is not expected" },
    };

    [Theory]
    [MemberData(nameof(Arguments))]
    public void TheWorkloadToolsTakeTheFiltersAndRefuseBadOnes(string arguments, string? problem)
    {
        IApexTool[] tools = [new LatencyProfileTool(null!), new CostBreakdownTool(null!), new ErrorAnalysisTool(null!), new WorkloadSummaryTool(null!)];
        foreach (var tool in tools)
        {
            var found = SchemaValidator.Validate(tool.ParametersSchema, Json(arguments));
            if (problem is null) Assert.Null(found);
            else Assert.StartsWith(problem, found, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void TheTriageSchemaChecksTheEntitiesShape()
    {
        const string Good = """
            {"category":"latency","priority":"medium","intent":"question","data_sufficiency":"sufficient",
             "entities":{"models":["gpt-4o"],"metrics":["p95"],"constraints":[],"window":{"from":"2026-11-01T00:00:00+00:00","to":"2026-11-02T00:00:00+00:00","label":"on 2026-11-01"}}}
            """;
        Assert.Null(SchemaValidator.Validate(AgentTeam.TriageSchema, Json(Good)));
        Assert.Equal("'entities': 'metrics[0]' must be one of [\"cost\",\"latency\",\"p50\",\"p95\",\"p99\",\"error_rate\",\"tokens\",\"calls\"].",
            SchemaValidator.Validate(AgentTeam.TriageSchema, Json(Good.Replace("\"p95\"", "\"vibes\"", StringComparison.Ordinal))));
        Assert.StartsWith("'entities': 'window': 'from' must be an ISO 8601",
            SchemaValidator.Validate(AgentTeam.TriageSchema, Json(Good.Replace("2026-11-01T00:00:00+00:00", "yesterday", StringComparison.Ordinal))), StringComparison.Ordinal);
        Assert.StartsWith("'intent' must be one of", SchemaValidator.Validate(AgentTeam.TriageSchema, Json(Good.Replace("\"question\"", "\"chat\"", StringComparison.Ordinal))), StringComparison.Ordinal);
    }
}
